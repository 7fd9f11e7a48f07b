export * from '../../provision/lab/moto.ts';
