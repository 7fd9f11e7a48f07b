export * from './types.ts';
export * from './quote.ts';
export * from './local.ts';
export * from './ssh.ts';
export * from './aws.ts';
