/** `lattice identity revoke`: one list per authority in a revocations file. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readRevocationLists, revocationsFromFile, verifyRevocations } from '@lattice/multiplexer';
import { tempDir } from '@lattice/testing';
import { authority, revoke } from '../src/identity.js';

const peer = (n: number): string => n.toString(16).padStart(32, '0');

describe('lattice identity revoke', () => {
  it('keeps one signed list per authority in the file, adding to its own', async () => {
    await using dir = await tempDir('lattice-revoke-');
    const file = join(dir.path, 'revocations');
    const keyA = join(dir.path, 'a.key');
    const keyB = join(dir.path, 'b.key');
    const a = authority(keyA).identity;
    const b = authority(keyB).identity;
    expect(revoke({ authorityKeyFile: keyA, peerIds: [peer(1)], file })).toEqual([peer(1)]);
    expect(revoke({ authorityKeyFile: keyB, peerIds: [peer(2)], file })).toEqual([peer(2)]);
    expect(revoke({ authorityKeyFile: keyA, peerIds: [peer(3)], file })).toEqual([
      peer(1),
      peer(3),
    ]);
    const lists = readRevocationLists(file);
    expect(lists).toHaveLength(2);
    // Each line verifies against its own authority only.
    const verified = lists.map((l) => verifyRevocations(l, [a.publicKey, b.publicKey]));
    expect(verified.map((v) => v.peerIds).sort()).toEqual([[peer(1), peer(3)], [peer(2)]]);
    expect(revocationsFromFile(file, b.publicKey)?.peerIds).toEqual([peer(2)]);
    expect(revocationsFromFile(join(dir.path, 'missing'), a.publicKey)).toBeUndefined();
  });
});
