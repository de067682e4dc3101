# drawn by metadistill; edit and rerun with: gnuplot accuracy.gp
set datafile separator ','
set title 'Test accuracy by epoch, mean over runs (fmnist, horizon-5)'
set xlabel 'epoch'
set ylabel 'test accuracy'
set key bottom right
set grid
set terminal pngcairo size 900,560 noenhanced
set output 'accuracy.png'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'none-lr0.3', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'fixed-0.5-1-t2', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'greedy', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'online-1-adam', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'proposed-online', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'greedy-init', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'online-init', \
     'accuracy.dat' index 8 using 1:2 with linespoints title 'proposed-online-init'
set terminal svg size 900,560 noenhanced
set output 'accuracy.svg'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'none-lr0.3', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'fixed-0.5-1-t2', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'greedy', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'online-1-adam', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'proposed-online', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'greedy-init', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'online-init', \
     'accuracy.dat' index 8 using 1:2 with linespoints title 'proposed-online-init'
unset output
