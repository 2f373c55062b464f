import { executePlan, MemorySource, parse, planQuery } from '@lattice/dql';
import type { Document, IndexInfo, JsonValue, SelectStatement } from '@lattice/dql';

/** Runs a SELECT over documents of collection `c`. */
export function run(
  text: string,
  docs: readonly Document[],
  args: Record<string, JsonValue> = {},
  indexes: IndexInfo[] = [],
): JsonValue[] {
  const s = parse(text);
  if (s.kind !== 'select') throw new TypeError('not a select');
  const src = new MemorySource();
  for (const d of docs) src.put((s as SelectStatement).from.name, d);
  return executePlan(planQuery(s, { args, indexes }), src, {
    now: () => Date.UTC(2026, 10, 20, 10),
  }).items;
}
