# drawn by metadistill; edit and rerun with: gnuplot accuracy.gp
set datafile separator ','
set title 'Test accuracy by epoch, mean over runs (fmnist, lr-channel)'
set xlabel 'epoch'
set ylabel 'test accuracy'
set key bottom right
set grid
set terminal pngcairo size 900,560 noenhanced
set output 'accuracy.png'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'none', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'naive', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'greedy-init', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'greedy-t2', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'greedy-stepnorm', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'naive-stepnorm', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'fixed-0-2-stepnorm'
set terminal svg size 900,560 noenhanced
set output 'accuracy.svg'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'none', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'naive', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'greedy-init', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'greedy-t2', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'greedy-stepnorm', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'naive-stepnorm', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'fixed-0-2-stepnorm'
unset output
