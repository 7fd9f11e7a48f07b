// One way to check a document against a TypeBox/JSON Schema (2020-12, with formats): every
// problem at once, one readable line each (`servers[1].ssh.port: must be <= 65535`).
import { Ajv2020, type Options } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { TSchema } from '@sinclair/typebox';
import { formatSchemaErrors } from './schema-errors.ts';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (a: Ajv2020) => void;

/** The ajv every schema here is compiled with (`code` for standalone output at build time). */
export function schemaAjv(code?: Options['code']): Ajv2020 {
  // verbose: the errors carry their schema, whose description names what a field must be
  const ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true, ...(code ? { code } : {}) });
  addFormats(ajv);
  return ajv;
}

/** A checker for one schema: the problems of a document, [] when it is valid. */
export function schemaChecker(schema: TSchema): (data: unknown) => string[] {
  // one ajv per schema: schemas that embed the same $id (the inventory inside the runtime config) never collide
  const validate = schemaAjv().compile(schema);
  return (data) => (validate(data) ? [] : formatSchemaErrors(validate.errors ?? [], data));
}
