// Turns ajv's raw errors into one readable line per problem, naming the field as
// `servers[1].ssh.port` — the way a person would point at it in the file.
import type { ErrorObject } from 'ajv';

export function fieldPath(instancePath: string): string {
  if (!instancePath) return '(top level)';
  return instancePath
    .split('/')
    .slice(1)
    .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

function join(base: string, key: string): string {
  return base === '(top level)' ? key : `${base}.${key}`;
}

function valueAt(data: unknown, instancePath: string): unknown {
  let cur: unknown = data;
  for (const seg of instancePath.split('/').slice(1)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

function describe(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${join(fieldPath(e.instancePath), String(p.additionalProperty))}: unknown key (check the spelling)`;
    case 'required':
      return `${join(fieldPath(e.instancePath), String(p.missingProperty))}: is required`;
    case 'pattern': {
      const d = (e.parentSchema as { description?: string } | undefined)?.description;
      return `${fieldPath(e.instancePath)}: must be ${d ?? `a string matching ${p.pattern}`}`;
    }
    case 'format':
      return `${fieldPath(e.instancePath)}: must be a valid ${p.format}`;
    case 'type':
      return `${fieldPath(e.instancePath)}: must be ${p.type === 'integer' ? 'an integer' : `a${/^[aeiou]/.test(String(p.type)) ? 'n' : ''} ${p.type}`}`;
    case 'minimum':
    case 'maximum':
      return `${fieldPath(e.instancePath)}: must be ${p.comparison} ${p.limit}`;
    case 'minItems':
      return `${fieldPath(e.instancePath)}: must have at least ${p.limit} item${p.limit === 1 ? '' : 's'}`;
    case 'minLength':
      return `${fieldPath(e.instancePath)}: must not be empty`;
    case 'const':
      return `${fieldPath(e.instancePath)}: must be ${JSON.stringify(p.allowedValue)}`;
    default:
      return `${fieldPath(e.instancePath)}: ${e.message ?? e.keyword}`;
  }
}

/**
 * ajv reports every branch of a union; keep the branch the user evidently meant
 * (the one whose `type` discriminator matches, else the one with fewest errors),
 * and turn unions of constants into "must be one of …".
 */
export function formatSchemaErrors(errors: ErrorObject[], data: unknown): string[] {
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf');
  let kept = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'if');
  const extra: string[] = [];
  // innermost unions first, so an outer union sees the already-pruned inner errors
  for (const u of [...anyOfs].sort((a, b) => b.schemaPath.length - a.schemaPath.length)) {
    const prefix = `${u.schemaPath}/`;
    const inside = kept.filter((e) => e.schemaPath.startsWith(prefix));
    if (inside.length === 0) continue;
    const byBranch = new Map<number, ErrorObject[]>();
    for (const e of inside) {
      const idx = Number(e.schemaPath.slice(prefix.length).split('/')[0]);
      byBranch.set(idx, [...(byBranch.get(idx) ?? []), e]);
    }
    const atSelf = inside.every((e) => e.instancePath === u.instancePath && (e.keyword === 'const' || e.keyword === 'type'));
    kept = kept.filter((e) => !e.schemaPath.startsWith(prefix));
    if (atSelf) {
      const consts = inside.filter((e) => e.keyword === 'const').map((e) => JSON.stringify((e.params as { allowedValue: unknown }).allowedValue));
      const types = inside.filter((e) => e.keyword === 'type').map((e) => `a list`.replace('a list', (e.params as { type: string }).type === 'array' ? 'a list' : `a ${(e.params as { type: string }).type}`));
      extra.push(`${fieldPath(u.instancePath)}: must be one of ${[...consts, ...types].join(', ')}`);
      continue;
    }
    const value = valueAt(data, u.instancePath);
    const typeField = `${u.instancePath}/type`;
    let chosen: ErrorObject[] | undefined;
    if (value && typeof value === 'object' && 'type' in (value as object)) {
      chosen = [...byBranch.values()].find((errs) => !errs.some((e) => e.instancePath === typeField));
      if (!chosen) {
        const consts = inside.filter((e) => e.instancePath === typeField && e.keyword === 'const').map((e) => JSON.stringify((e.params as { allowedValue: unknown }).allowedValue));
        extra.push(`${fieldPath(typeField)}: must be one of ${consts.join(', ')}`);
        continue;
      }
    }
    chosen ??= [...byBranch.values()].sort((a, b) => a.length - b.length)[0];
    kept.push(...chosen);
  }
  const lines = [...kept.map(describe), ...extra];
  return [...new Set(lines)];
}
