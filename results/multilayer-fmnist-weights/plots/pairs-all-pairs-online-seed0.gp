# drawn by metadistill; edit and rerun with: gnuplot pairs-all-pairs-online-seed0.gp
set datafile separator ','
set title 'all-pairs-online seed 0: pair weights (line width ~ lambda), beta = 0.344, test acc 0.8924'
unset key
unset border
unset xtics
unset ytics
set xrange [-0.6:1.6]
set yrange [-2.6:0.8]
set label 'teacher' at 0,0.5 center
set label 'student' at 1,0.5 center
set arrow from 0,-0 to 1,-0 nohead lw 5.751 lc rgb '#3366aa' back  # conv1->conv1 = 0.1406
set arrow from 0,-0 to 1,-1 nohead lw 3.669 lc rgb '#3366aa' back  # conv1->conv2 = 0.08788
set arrow from 0,-0 to 1,-2 nohead lw 4.947 lc rgb '#3366aa' back  # conv1->conv3 = 0.1203
set arrow from 0,-1 to 1,-0 nohead lw 2.677 lc rgb '#3366aa' back  # conv2->conv1 = 0.06275
set arrow from 0,-1 to 1,-1 nohead lw 1.464 lc rgb '#3366aa' back  # conv2->conv2 = 0.03201
set arrow from 0,-1 to 1,-2 nohead lw 4.255 lc rgb '#3366aa' back  # conv2->conv3 = 0.1027
set arrow from 0,-2 to 1,-0 nohead lw 3.457 lc rgb '#3366aa' back  # conv3->conv1 = 0.08252
set arrow from 0,-2 to 1,-1 nohead lw 12.000 lc rgb '#3366aa' back  # conv3->conv2 = 0.2989
set arrow from 0,-2 to 1,-2 nohead lw 3.056 lc rgb '#3366aa' back  # conv3->conv3 = 0.07235

set terminal pngcairo size 900,560 noenhanced
set output 'pairs-all-pairs-online-seed0.png'
plot 'pairs-all-pairs-online-seed0.dat' index 0 using 1:2 with points pt 7 ps 2.5 lc rgb '#cc2222', 'pairs-all-pairs-online-seed0.dat' index 0 using ($1-0.08):2:3 with labels right, 'pairs-all-pairs-online-seed0.dat' index 1 using 1:2 with points pt 7 ps 2.5 lc rgb '#22aa22', 'pairs-all-pairs-online-seed0.dat' index 1 using ($1+0.08):2:3 with labels left
set terminal svg size 900,560 noenhanced
set output 'pairs-all-pairs-online-seed0.svg'
plot 'pairs-all-pairs-online-seed0.dat' index 0 using 1:2 with points pt 7 ps 2.5 lc rgb '#cc2222', 'pairs-all-pairs-online-seed0.dat' index 0 using ($1-0.08):2:3 with labels right, 'pairs-all-pairs-online-seed0.dat' index 1 using 1:2 with points pt 7 ps 2.5 lc rgb '#22aa22', 'pairs-all-pairs-online-seed0.dat' index 1 using ($1+0.08):2:3 with labels left
unset output
