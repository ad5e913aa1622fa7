/** Every workflow of the suite, bundled once per run. */
export * from './saga';
export * from './activity-workflows';
export * from './timers';
export * from './messages';
export * from './children';
export * from './lifecycle';
export * from './misc';
