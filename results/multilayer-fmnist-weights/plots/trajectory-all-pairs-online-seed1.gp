# drawn by metadistill; edit and rerun with: gnuplot trajectory-all-pairs-online-seed1.gp
set datafile separator ','

set terminal pngcairo size 900,560 noenhanced
set output 'trajectory-all-pairs-online-seed1.png'
set multiplot layout 2,1 title 'Learned metaparameters: all-pairs-online seed 1'
set xlabel 'step'
set ylabel 'lambda_ij'
set key outside right font ',7'
plot '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:4 with lines title 'conv1->conv1', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:5 with lines title 'conv1->conv2', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:6 with lines title 'conv1->conv3', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:7 with lines title 'conv2->conv1', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:8 with lines title 'conv2->conv2', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:9 with lines title 'conv2->conv3', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:10 with lines title 'conv3->conv1', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:11 with lines title 'conv3->conv2', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:12 with lines title 'conv3->conv3'
set ylabel 'beta'
set yrange [0:1]
unset key
plot '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:2 with lines
set yrange [*:*]
unset multiplot
set terminal svg size 900,560 noenhanced
set output 'trajectory-all-pairs-online-seed1.svg'
set multiplot layout 2,1 title 'Learned metaparameters: all-pairs-online seed 1'
set xlabel 'step'
set ylabel 'lambda_ij'
set key outside right font ',7'
plot '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:4 with lines title 'conv1->conv1', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:5 with lines title 'conv1->conv2', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:6 with lines title 'conv1->conv3', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:7 with lines title 'conv2->conv1', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:8 with lines title 'conv2->conv2', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:9 with lines title 'conv2->conv3', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:10 with lines title 'conv3->conv1', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:11 with lines title 'conv3->conv2', '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:12 with lines title 'conv3->conv3'
set ylabel 'beta'
set yrange [0:1]
unset key
plot '../runs/all-pairs-online/seed1/pair_weights.csv' skip 1 using 1:2 with lines
set yrange [*:*]
unset multiplot
unset output
