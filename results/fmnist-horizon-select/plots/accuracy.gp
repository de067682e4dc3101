# drawn by metadistill; edit and rerun with: gnuplot accuracy.gp
set datafile separator ','
set title 'Test accuracy by epoch, mean over runs (fmnist, horizon-select)'
set xlabel 'epoch'
set ylabel 'test accuracy'
set key bottom right
set grid
set terminal pngcairo size 900,560 noenhanced
set output 'accuracy.png'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'ce-lr0.1', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'ce-lr0.3', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'ce-lr1.0', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'fixed-0-1', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'fixed-0-4', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'fixed-0-8', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'fixed-0.25-1', \
     'accuracy.dat' index 8 using 1:2 with linespoints title 'fixed-0.25-2', \
     'accuracy.dat' index 9 using 1:2 with linespoints title 'fixed-0.25-4', \
     'accuracy.dat' index 10 using 1:2 with linespoints title 'fixed-0.25-8', \
     'accuracy.dat' index 11 using 1:2 with linespoints title 'fixed-0.5-1', \
     'accuracy.dat' index 12 using 1:2 with linespoints title 'fixed-0.5-2', \
     'accuracy.dat' index 13 using 1:2 with linespoints title 'fixed-0.5-4', \
     'accuracy.dat' index 14 using 1:2 with linespoints title 'fixed-0.5-8', \
     'accuracy.dat' index 15 using 1:2 with linespoints title 'fixed-0.75-1', \
     'accuracy.dat' index 16 using 1:2 with linespoints title 'fixed-0.75-2', \
     'accuracy.dat' index 17 using 1:2 with linespoints title 'fixed-0.75-4', \
     'accuracy.dat' index 18 using 1:2 with linespoints title 'fixed-0.75-8', \
     'accuracy.dat' index 19 using 1:2 with linespoints title 'fixed-0-1-t2', \
     'accuracy.dat' index 20 using 1:2 with linespoints title 'fixed-0-2-t2', \
     'accuracy.dat' index 21 using 1:2 with linespoints title 'fixed-0-4-t2', \
     'accuracy.dat' index 22 using 1:2 with linespoints title 'fixed-0-8-t2', \
     'accuracy.dat' index 23 using 1:2 with linespoints title 'fixed-0.25-1-t2', \
     'accuracy.dat' index 24 using 1:2 with linespoints title 'fixed-0.25-2-t2', \
     'accuracy.dat' index 25 using 1:2 with linespoints title 'fixed-0.25-4-t2', \
     'accuracy.dat' index 26 using 1:2 with linespoints title 'fixed-0.25-8-t2', \
     'accuracy.dat' index 27 using 1:2 with linespoints title 'fixed-0.5-1-t2', \
     'accuracy.dat' index 28 using 1:2 with linespoints title 'fixed-0.5-2-t2', \
     'accuracy.dat' index 29 using 1:2 with linespoints title 'fixed-0.5-4-t2', \
     'accuracy.dat' index 30 using 1:2 with linespoints title 'fixed-0.5-8-t2', \
     'accuracy.dat' index 31 using 1:2 with linespoints title 'fixed-0.75-1-t2', \
     'accuracy.dat' index 32 using 1:2 with linespoints title 'fixed-0.75-2-t2', \
     'accuracy.dat' index 33 using 1:2 with linespoints title 'fixed-0.75-4-t2', \
     'accuracy.dat' index 34 using 1:2 with linespoints title 'fixed-0.75-8-t2', \
     'accuracy.dat' index 35 using 1:2 with linespoints title 'greedy', \
     'accuracy.dat' index 36 using 1:2 with linespoints title 'online-0.9-adam', \
     'accuracy.dat' index 37 using 1:2 with linespoints title 'online-0.99-adam', \
     'accuracy.dat' index 38 using 1:2 with linespoints title 'online-1-adam', \
     'accuracy.dat' index 39 using 1:2 with linespoints title 'online-0.99-sign'
set terminal svg size 900,560 noenhanced
set output 'accuracy.svg'
plot 'accuracy.dat' index 0 using 1:2 with linespoints title 'ce-lr0.1', \
     'accuracy.dat' index 1 using 1:2 with linespoints title 'ce-lr0.3', \
     'accuracy.dat' index 2 using 1:2 with linespoints title 'ce-lr1.0', \
     'accuracy.dat' index 3 using 1:2 with linespoints title 'fixed-0-1', \
     'accuracy.dat' index 4 using 1:2 with linespoints title 'fixed-0-2', \
     'accuracy.dat' index 5 using 1:2 with linespoints title 'fixed-0-4', \
     'accuracy.dat' index 6 using 1:2 with linespoints title 'fixed-0-8', \
     'accuracy.dat' index 7 using 1:2 with linespoints title 'fixed-0.25-1', \
     'accuracy.dat' index 8 using 1:2 with linespoints title 'fixed-0.25-2', \
     'accuracy.dat' index 9 using 1:2 with linespoints title 'fixed-0.25-4', \
     'accuracy.dat' index 10 using 1:2 with linespoints title 'fixed-0.25-8', \
     'accuracy.dat' index 11 using 1:2 with linespoints title 'fixed-0.5-1', \
     'accuracy.dat' index 12 using 1:2 with linespoints title 'fixed-0.5-2', \
     'accuracy.dat' index 13 using 1:2 with linespoints title 'fixed-0.5-4', \
     'accuracy.dat' index 14 using 1:2 with linespoints title 'fixed-0.5-8', \
     'accuracy.dat' index 15 using 1:2 with linespoints title 'fixed-0.75-1', \
     'accuracy.dat' index 16 using 1:2 with linespoints title 'fixed-0.75-2', \
     'accuracy.dat' index 17 using 1:2 with linespoints title 'fixed-0.75-4', \
     'accuracy.dat' index 18 using 1:2 with linespoints title 'fixed-0.75-8', \
     'accuracy.dat' index 19 using 1:2 with linespoints title 'fixed-0-1-t2', \
     'accuracy.dat' index 20 using 1:2 with linespoints title 'fixed-0-2-t2', \
     'accuracy.dat' index 21 using 1:2 with linespoints title 'fixed-0-4-t2', \
     'accuracy.dat' index 22 using 1:2 with linespoints title 'fixed-0-8-t2', \
     'accuracy.dat' index 23 using 1:2 with linespoints title 'fixed-0.25-1-t2', \
     'accuracy.dat' index 24 using 1:2 with linespoints title 'fixed-0.25-2-t2', \
     'accuracy.dat' index 25 using 1:2 with linespoints title 'fixed-0.25-4-t2', \
     'accuracy.dat' index 26 using 1:2 with linespoints title 'fixed-0.25-8-t2', \
     'accuracy.dat' index 27 using 1:2 with linespoints title 'fixed-0.5-1-t2', \
     'accuracy.dat' index 28 using 1:2 with linespoints title 'fixed-0.5-2-t2', \
     'accuracy.dat' index 29 using 1:2 with linespoints title 'fixed-0.5-4-t2', \
     'accuracy.dat' index 30 using 1:2 with linespoints title 'fixed-0.5-8-t2', \
     'accuracy.dat' index 31 using 1:2 with linespoints title 'fixed-0.75-1-t2', \
     'accuracy.dat' index 32 using 1:2 with linespoints title 'fixed-0.75-2-t2', \
     'accuracy.dat' index 33 using 1:2 with linespoints title 'fixed-0.75-4-t2', \
     'accuracy.dat' index 34 using 1:2 with linespoints title 'fixed-0.75-8-t2', \
     'accuracy.dat' index 35 using 1:2 with linespoints title 'greedy', \
     'accuracy.dat' index 36 using 1:2 with linespoints title 'online-0.9-adam', \
     'accuracy.dat' index 37 using 1:2 with linespoints title 'online-0.99-adam', \
     'accuracy.dat' index 38 using 1:2 with linespoints title 'online-1-adam', \
     'accuracy.dat' index 39 using 1:2 with linespoints title 'online-0.99-sign'
unset output
