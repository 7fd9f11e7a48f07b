export * from '../../provision/lab/wait.ts';
