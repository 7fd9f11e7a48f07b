// Every engine of the registry through the DbEngine conformance suite, each with its fixture.
import { DB_ENGINES } from '../../contract/db-engines.ts';
import { dbEngineConformance } from '../conformance/db-engine.ts';
import { DB_ENGINE_FIXTURES } from '../conformance/db-engines/index.ts';

for (const engine of DB_ENGINES) dbEngineConformance(engine, DB_ENGINE_FIXTURES[engine.name]);
