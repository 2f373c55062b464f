/**
 * Permissions on the wire: `lattice.v1.Permissions` (link contract, multiplexer peer events) to
 * and from the shape `@lattice/dql` compiles. The transport that authenticated a restricted
 * peer encodes them (the gateway's WebSocket endpoint); the sync sessions decode and enforce them.
 */
import type { PermissionSpec, PermissionsSpec } from '@lattice/dql';
import type { v1 } from '@lattice/proto';

/** A configured permission as the link contract carries it. */
export function permissionsToProto(spec: PermissionsSpec): v1.IPermissions {
  const access = (a: PermissionSpec | undefined): v1.IAccessSpec => ({
    everything: a?.everything === true,
    queriesByCollection: Object.fromEntries(
      Object.entries(a?.queriesByCollection ?? {}).map(([c, q]) => [c, { queries: [...q] }]),
    ),
  });
  return { read: access(spec.read), write: access(spec.write) };
}

/** The inverse of {@link permissionsToProto} (an absent direction permits nothing). */
export function permissionsFromProto(p: v1.IPermissions): PermissionsSpec {
  const access = (a: v1.IAccessSpec | null | undefined): PermissionSpec | undefined =>
    a
      ? {
          everything: a.everything === true,
          queriesByCollection: Object.fromEntries(
            Object.entries(a.queriesByCollection ?? {}).map(([c, l]) => [c, l.queries ?? []]),
          ),
        }
      : undefined;
  return { read: access(p.read), write: access(p.write) };
}
