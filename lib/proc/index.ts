export * from './spawn.ts';
export * from './error.ts';
export * from './children.ts';
export * from './which.ts';
