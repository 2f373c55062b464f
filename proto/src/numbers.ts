/**
 * Makes protobufjs read and default 64-bit fields as JS numbers, as the generated types
 * (`--force-number`) declare: exact up to 2^53, which every Lattice sequence, counter and time
 * stays below. Without it, decoding returns `Long` objects whenever the `long` package is
 * installed.
 *
 * @remarks A module of its own, imported by `index.ts` before the generated code: the generated
 * module sets each 64-bit field's prototype default (`$util.Long ? Long.fromBits(0, 0) : 0`)
 * when it is evaluated, and imports are evaluated before the body of the module that imports
 * them, so configuring in `index.ts` itself came too late for those defaults (an absent field
 * read as a `Long` zero).
 */
import protobuf from 'protobufjs/minimal.js';

protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();
