/** Every name a lab makes (netns, cgroups, pins, run directories) starts with this, then <owner pid>p<random>. */
export const LAB_PREFIX = 'sylab';
/** Where labs keep their run directories. */
export const LAB_RUN_ROOT = '/run/switchyard-lab';
