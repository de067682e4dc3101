# drawn by metadistill; edit and rerun with: gnuplot accuracy.gp
set datafile separator ','
set title 'Test accuracy by epoch, mean over runs (fmnist: conv-tiny -> conv-very-tiny)'
set xlabel 'epoch'
set ylabel 'test accuracy'
set key bottom right
set grid
set terminal pngcairo size 900,560 noenhanced
set output 'accuracy.png'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'all-pairs-fixed', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'all-pairs-random', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'all-pairs-fd', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'all-pairs-online', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'all-pairs-online-proposed'
set terminal svg size 900,560 noenhanced
set output 'accuracy.svg'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'all-pairs-fixed', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'all-pairs-random', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'all-pairs-fd', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'all-pairs-online', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'all-pairs-online-proposed'
unset output
