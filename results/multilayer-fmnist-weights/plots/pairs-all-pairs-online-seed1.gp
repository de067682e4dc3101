# drawn by metadistill; edit and rerun with: gnuplot pairs-all-pairs-online-seed1.gp
set datafile separator ','
set title 'all-pairs-online seed 1: pair weights (line width ~ lambda), beta = 0.284, test acc 0.8932'
unset key
unset border
unset xtics
unset ytics
set xrange [-0.6:1.6]
set yrange [-2.6:0.8]
set label 'teacher' at 0,0.5 center
set label 'student' at 1,0.5 center
set arrow from 0,-0 to 1,-0 nohead lw 2.226 lc rgb '#3366aa' back  # conv1->conv1 = 0.09005
set arrow from 0,-0 to 1,-1 nohead lw 1.630 lc rgb '#3366aa' back  # conv1->conv2 = 0.06358
set arrow from 0,-0 to 1,-2 nohead lw 1.726 lc rgb '#3366aa' back  # conv1->conv3 = 0.06782
set arrow from 0,-1 to 1,-0 nohead lw 0.767 lc rgb '#3366aa' back  # conv2->conv1 = 0.02519
set arrow from 0,-1 to 1,-1 nohead lw 12.000 lc rgb '#3366aa' back  # conv2->conv2 = 0.5245
set arrow from 0,-1 to 1,-2 nohead lw 1.855 lc rgb '#3366aa' back  # conv2->conv3 = 0.07357
set arrow from 0,-2 to 1,-0 nohead lw 2.158 lc rgb '#3366aa' back  # conv3->conv1 = 0.08702
set arrow from 0,-2 to 1,-1 nohead lw 0.850 lc rgb '#3366aa' back  # conv3->conv2 = 0.02891
set arrow from 0,-2 to 1,-2 nohead lw 1.085 lc rgb '#3366aa' back  # conv3->conv3 = 0.03932

set terminal pngcairo size 900,560 noenhanced
set output 'pairs-all-pairs-online-seed1.png'
plot 'pairs-all-pairs-online-seed1.dat' index 0 using 1:2 with points pt 7 ps 2.5 lc rgb '#cc2222', 'pairs-all-pairs-online-seed1.dat' index 0 using ($1-0.08):2:3 with labels right, 'pairs-all-pairs-online-seed1.dat' index 1 using 1:2 with points pt 7 ps 2.5 lc rgb '#22aa22', 'pairs-all-pairs-online-seed1.dat' index 1 using ($1+0.08):2:3 with labels left
set terminal svg size 900,560 noenhanced
set output 'pairs-all-pairs-online-seed1.svg'
plot 'pairs-all-pairs-online-seed1.dat' index 0 using 1:2 with points pt 7 ps 2.5 lc rgb '#cc2222', 'pairs-all-pairs-online-seed1.dat' index 0 using ($1-0.08):2:3 with labels right, 'pairs-all-pairs-online-seed1.dat' index 1 using 1:2 with points pt 7 ps 2.5 lc rgb '#22aa22', 'pairs-all-pairs-online-seed1.dat' index 1 using ($1+0.08):2:3 with labels left
unset output
