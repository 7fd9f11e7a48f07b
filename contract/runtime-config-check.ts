// The schema half of config.json's check, one line per problem. The runtime bundle replaces this
// module with ajv's standalone code for the same schema, generated when it is built
// (provision/build-runtime.ts): compiling the schema at every start would cost the Pi time and
// tens of MB; both give the same lines (test/unit/runtime-bundle.test.ts).
import { schemaChecker } from './json-schema.ts';
import { RuntimeConfigSchema } from './runtime-config-schema.ts';

export const runtimeConfigSchemaProblems = schemaChecker(RuntimeConfigSchema);
