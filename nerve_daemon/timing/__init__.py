"""Time for the scheduler and the kernel: the clock, tick grids (epoch-anchored intervals and
cron), the marks that let a restart know what it missed, and durable delayed triggers."""
