# drawn by metadistill; edit and rerun with: gnuplot accuracy.gp
set datafile separator ','
set title 'Test accuracy by epoch, mean over runs (fmnist, horizon-20-select)'
set xlabel 'epoch'
set ylabel 'test accuracy'
set key bottom right
set grid
set terminal pngcairo size 900,560 noenhanced
set output 'accuracy.png'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'ce-lr0.3', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'ce-lr1.0', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'fixed-0.5-1', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'fixed-0.25-1', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'online-init', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'greedy-stepnorm', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'fixed-0.25-1-stepnorm', \
     'accuracy.dat' index 8 using 1:2 with linespoints title 'fixed-0.5-1-stepnorm', \
     'accuracy.dat' index 9 using 1:2 with linespoints title 'fixed-0-2-stepnorm', \
     'accuracy.dat' index 10 using 1:2 with linespoints title 'online-stepnorm'
set terminal svg size 900,560 noenhanced
set output 'accuracy.svg'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'ce-lr0.3', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'ce-lr1.0', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'fixed-0.5-1', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'fixed-0.25-1', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'online-init', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'greedy-stepnorm', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'fixed-0.25-1-stepnorm', \
     'accuracy.dat' index 8 using 1:2 with linespoints title 'fixed-0.5-1-stepnorm', \
     'accuracy.dat' index 9 using 1:2 with linespoints title 'fixed-0-2-stepnorm', \
     'accuracy.dat' index 10 using 1:2 with linespoints title 'online-stepnorm'
unset output
