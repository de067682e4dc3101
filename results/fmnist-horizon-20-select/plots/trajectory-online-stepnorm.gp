# drawn by metadistill; edit and rerun with: gnuplot trajectory-online-stepnorm.gp
set datafile separator ','

set terminal pngcairo size 900,560 noenhanced
set output 'trajectory-online-stepnorm.png'
set multiplot layout 2,1 title 'Metaparameter trajectories: online-stepnorm'
set xlabel 'step'
set ylabel 'lambda1'
set yrange [0:1]
set key off
plot '../runs/online-stepnorm/seed100/trajectory.csv' skip 1 using 1:2 with lines title 'run 0'
set ylabel 'T'
set logscale y
set yrange [0.1:10]
plot '../runs/online-stepnorm/seed100/trajectory.csv' skip 1 using 1:3 with lines title 'run 0'
unset logscale y
set yrange [*:*]
unset multiplot
set terminal svg size 900,560 noenhanced
set output 'trajectory-online-stepnorm.svg'
set multiplot layout 2,1 title 'Metaparameter trajectories: online-stepnorm'
set xlabel 'step'
set ylabel 'lambda1'
set yrange [0:1]
set key off
plot '../runs/online-stepnorm/seed100/trajectory.csv' skip 1 using 1:2 with lines title 'run 0'
set ylabel 'T'
set logscale y
set yrange [0.1:10]
plot '../runs/online-stepnorm/seed100/trajectory.csv' skip 1 using 1:3 with lines title 'run 0'
unset logscale y
set yrange [*:*]
unset multiplot
unset output
