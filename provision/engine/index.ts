export * from './types.ts';
export * from './run.ts';
export * from './report.ts';
export * from './redact.ts';
export * from './files.ts';
