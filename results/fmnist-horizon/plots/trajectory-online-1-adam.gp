# drawn by metadistill; edit and rerun with: gnuplot trajectory-online-1-adam.gp
set datafile separator ','

set terminal pngcairo size 900,560 noenhanced
set output 'trajectory-online-1-adam.png'
set multiplot layout 2,1 title 'Metaparameter trajectories: online-1-adam'
set xlabel 'step'
set ylabel 'lambda1'
set yrange [0:1]
set key off
plot '../runs/online-1-adam/seed0/trajectory.csv' skip 1 using 1:2 with lines title 'run 0', '../runs/online-1-adam/seed1/trajectory.csv' skip 1 using 1:2 with lines title 'run 1', '../runs/online-1-adam/seed2/trajectory.csv' skip 1 using 1:2 with lines title 'run 2', '../runs/online-1-adam/seed3/trajectory.csv' skip 1 using 1:2 with lines title 'run 3', '../runs/online-1-adam/seed4/trajectory.csv' skip 1 using 1:2 with lines title 'run 4'
set ylabel 'T'
set logscale y
set yrange [0.1:10]
plot '../runs/online-1-adam/seed0/trajectory.csv' skip 1 using 1:3 with lines title 'run 0', '../runs/online-1-adam/seed1/trajectory.csv' skip 1 using 1:3 with lines title 'run 1', '../runs/online-1-adam/seed2/trajectory.csv' skip 1 using 1:3 with lines title 'run 2', '../runs/online-1-adam/seed3/trajectory.csv' skip 1 using 1:3 with lines title 'run 3', '../runs/online-1-adam/seed4/trajectory.csv' skip 1 using 1:3 with lines title 'run 4'
unset logscale y
set yrange [*:*]
unset multiplot
set terminal svg size 900,560 noenhanced
set output 'trajectory-online-1-adam.svg'
set multiplot layout 2,1 title 'Metaparameter trajectories: online-1-adam'
set xlabel 'step'
set ylabel 'lambda1'
set yrange [0:1]
set key off
plot '../runs/online-1-adam/seed0/trajectory.csv' skip 1 using 1:2 with lines title 'run 0', '../runs/online-1-adam/seed1/trajectory.csv' skip 1 using 1:2 with lines title 'run 1', '../runs/online-1-adam/seed2/trajectory.csv' skip 1 using 1:2 with lines title 'run 2', '../runs/online-1-adam/seed3/trajectory.csv' skip 1 using 1:2 with lines title 'run 3', '../runs/online-1-adam/seed4/trajectory.csv' skip 1 using 1:2 with lines title 'run 4'
set ylabel 'T'
set logscale y
set yrange [0.1:10]
plot '../runs/online-1-adam/seed0/trajectory.csv' skip 1 using 1:3 with lines title 'run 0', '../runs/online-1-adam/seed1/trajectory.csv' skip 1 using 1:3 with lines title 'run 1', '../runs/online-1-adam/seed2/trajectory.csv' skip 1 using 1:3 with lines title 'run 2', '../runs/online-1-adam/seed3/trajectory.csv' skip 1 using 1:3 with lines title 'run 3', '../runs/online-1-adam/seed4/trajectory.csv' skip 1 using 1:3 with lines title 'run 4'
unset logscale y
set yrange [*:*]
unset multiplot
unset output
