import { describe, expect, it } from 'vitest';
import { hasCode } from '@lattice/errors';
import {
  accessCondition,
  compileAccess,
  compilePermissions,
  parseCondition,
  PERMISSION_LIMITS,
  permits,
} from '@lattice/dql';

describe('permissions', () => {
  const region = compileAccess({
    queriesByCollection: { cars: ["_id.region = '1'", "_id.region = '3'"], empty: [] },
  });

  it('admits a document when any condition of its collection holds, by id alone', () => {
    expect(permits(region, 'cars', { region: '1', vin: 'a' })).toBe(true);
    expect(permits(region, 'cars', { region: '3' })).toBe(true);
    expect(permits(region, 'cars', { region: '2' })).toBe(false);
    // An id that is not an object has no sub-field: MISSING is not TRUE.
    expect(permits(region, 'cars', 'plain-id')).toBe(false);
    expect(permits(region, 'cars', 7)).toBe(false);
  });

  it('permits nothing in other collections, empty lists and system collections', () => {
    expect(permits(region, 'people', { region: '1' })).toBe(false);
    expect(permits(region, 'empty', { region: '1' })).toBe(false);
    expect(accessCondition(region, 'system:data_sync_info')).toBeUndefined();
  });

  it('everything admits every document, system collections included; nothing admits none', () => {
    const p = compilePermissions({ read: { everything: true } });
    expect(permits(p.read, 'system:data_sync_info', 'x')).toBe(true);
    expect(permits(p.read, 'cars', { region: '9' })).toBe(true);
    expect(permits(p.write, 'cars', { region: '1' })).toBe(false);
    expect(p.write.everything).toBe(false);
  });

  it('conditions may use functions and operators on _id, but nothing else', () => {
    const a = compileAccess({ queriesByCollection: { c: ["_id.owner LIKE 'team-%'"] } });
    expect(permits(a, 'c', { owner: 'team-a' })).toBe(true);
    expect(permits(a, 'c', { owner: 'me' })).toBe(false);
    for (const [bad, found] of [
      ["make = 'x'", 'field make'],
      ['_id = :x', 'parameter :x'],
      ['count(_id) > 1', 'aggregate count()'],
      ['ANY t IN _id.tags SATISFIES t = 1 END', 'SATISFIES'],
    ] as const) {
      let error: unknown;
      try {
        parseCondition(bad);
      } catch (e) {
        error = e;
      }
      expect(hasCode(error, 'DQL_INVALID_PERMISSION'), bad).toBe(true);
      expect((error as Error).message).toContain(found);
    }
    expect(() => parseCondition('_id.a =')).toThrow(/DQL_SYNTAX|expected/i);
  });

  it('limits the number and length of conditions', () => {
    const long = `_id.a = '${'x'.repeat(PERMISSION_LIMITS.conditionLength)}'`;
    expect(() => parseCondition(long)).toThrow(/at most/);
    const many = Array.from({ length: PERMISSION_LIMITS.conditions + 1 }, (_, i) => `_id = ${i}`);
    let error: unknown;
    try {
      compileAccess({ queriesByCollection: { c: many } });
    } catch (e) {
      error = e;
    }
    expect(hasCode(error, 'DQL_INVALID_PERMISSION')).toBe(true);
  });
});
