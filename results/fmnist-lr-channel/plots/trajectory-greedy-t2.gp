# drawn by metadistill; edit and rerun with: gnuplot trajectory-greedy-t2.gp
set datafile separator ','

set terminal pngcairo size 900,560 noenhanced
set output 'trajectory-greedy-t2.png'
set multiplot layout 2,1 title 'Metaparameter trajectories: greedy-t2'
set xlabel 'step'
set ylabel 'lambda1'
set yrange [0:1]
set key off
plot '../runs/greedy-t2/seed0/trajectory.csv' skip 1 using 1:2 with lines title 'run 0', '../runs/greedy-t2/seed1/trajectory.csv' skip 1 using 1:2 with lines title 'run 1', '../runs/greedy-t2/seed2/trajectory.csv' skip 1 using 1:2 with lines title 'run 2'
set ylabel 'T'
set logscale y
set yrange [0.1:10]
plot '../runs/greedy-t2/seed0/trajectory.csv' skip 1 using 1:3 with lines title 'run 0', '../runs/greedy-t2/seed1/trajectory.csv' skip 1 using 1:3 with lines title 'run 1', '../runs/greedy-t2/seed2/trajectory.csv' skip 1 using 1:3 with lines title 'run 2'
unset logscale y
set yrange [*:*]
unset multiplot
set terminal svg size 900,560 noenhanced
set output 'trajectory-greedy-t2.svg'
set multiplot layout 2,1 title 'Metaparameter trajectories: greedy-t2'
set xlabel 'step'
set ylabel 'lambda1'
set yrange [0:1]
set key off
plot '../runs/greedy-t2/seed0/trajectory.csv' skip 1 using 1:2 with lines title 'run 0', '../runs/greedy-t2/seed1/trajectory.csv' skip 1 using 1:2 with lines title 'run 1', '../runs/greedy-t2/seed2/trajectory.csv' skip 1 using 1:2 with lines title 'run 2'
set ylabel 'T'
set logscale y
set yrange [0.1:10]
plot '../runs/greedy-t2/seed0/trajectory.csv' skip 1 using 1:3 with lines title 'run 0', '../runs/greedy-t2/seed1/trajectory.csv' skip 1 using 1:3 with lines title 'run 1', '../runs/greedy-t2/seed2/trajectory.csv' skip 1 using 1:3 with lines title 'run 2'
unset logscale y
set yrange [*:*]
unset multiplot
unset output
