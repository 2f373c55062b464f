/**
 * Byte-level building blocks of the compact codec (`codec.ts`): varints, signed varints, UTF-8,
 * and run-length-encoded integer columns.
 *
 * Formats (all canonical: the decoder rejects every non-minimal form):
 * - `varint`: unsigned LEB128 of a safe integer (≤ 2^53 − 1), 7 bits per byte, least significant
 *   group first, high bit = more bytes follow; no trailing zero group.
 * - `svarint`: a signed safe integer as sign-magnitude: first byte = 6 low magnitude bits,
 *   bit 6 = negative, bit 7 = more; the rest of the magnitude (`|n| >> 6`) follows as a varint
 *   (non-zero). `-0` is not a value.
 * - RLE column: a sequence of segments, each `varint(h)`: `h = 2n` is a run of `n ≥ 2` copies of
 *   one value (the value follows once), `h = 2n + 1` a literal of `n ≥ 1` values that follow.
 *   The encoder makes runs of every repeat and literals of the rest, so two adjacent values of a
 *   literal differ, two adjacent segments never start/end on the same value, and a literal never
 *   follows a literal; the decoder checks all of it.
 */
import { crdtError } from './errors.js';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Throws the codec's typed error. */
export function bad(what: string): never {
  throw crdtError('CRDT_DECODE', `invalid encoding: ${what}`);
}

/** A growable byte buffer. */
export class ByteWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    this.ensure(8);
    const buf = this.buf;
    let pos = this.pos;
    while (n >= 0x80) {
      buf[pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  svarint(n: number): void {
    const neg = n < 0;
    const m = neg ? -n : n;
    const rest = Math.floor(m / 64);
    this.byte((m % 64) | (neg ? 0x40 : 0) | (rest > 0 ? 0x80 : 0));
    if (rest > 0) this.varint(rest);
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** UTF-8 bytes of `s` (no length); returns how many were written. */
  utf8(s: string): number {
    const start = this.pos;
    this.ensure(s.length * 3);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) {
        buf[pos++] = c;
        continue;
      }
      // Non-ASCII: let the platform encoder handle surrogates (lone ones become U+FFFD).
      this.pos = pos;
      const { written } = encoder.encodeInto(s.slice(i), buf.subarray(pos));
      this.pos = pos + written;
      return this.pos - start;
    }
    this.pos = pos;
    return pos - start;
  }

  /** Length-prefixed UTF-8 string. */
  string(s: string): void {
    if (isAscii(s)) {
      this.varint(s.length);
      this.utf8(s);
      return;
    }
    const b = encoder.encode(s);
    this.varint(b.length);
    this.bytes(b);
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** Empties the buffer for reuse (a scratch buffer that grew large is dropped). */
  reset(): void {
    this.pos = 0;
    if (this.buf.length > 1 << 20) this.buf = new Uint8Array(256);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/** A bounds-checked cursor over bytes. */
export class ByteReader {
  buf: Uint8Array;
  pos: number;
  end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** Points the reader at other bytes (readers are reused: one decode allocates none). */
  reset(buf: Uint8Array, start: number, end: number): void {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) bad('truncated');
    return this.buf[this.pos++] as number;
  }

  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= this.end) bad('truncated');
    let b = buf[pos++] as number;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let n = b & 0x7f;
    let scale = 0x80;
    for (;;) {
      if (pos >= this.end) bad('truncated varint');
      b = buf[pos++] as number;
      n += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 56) bad('varint too long');
    }
    if (b === 0) bad('non-minimal varint');
    if (n > MAX_SAFE) bad('integer out of range');
    this.pos = pos;
    return n;
  }

  svarint(): number {
    const b = this.byte();
    let m = b & 0x3f;
    if (b & 0x80) {
      const rest = this.varint();
      if (rest === 0) bad('non-minimal svarint');
      m += rest * 64;
      if (m > MAX_SAFE) bad('integer out of range');
    }
    if (b & 0x40) {
      if (m === 0) bad('negative zero');
      return -m;
    }
    return m;
  }

  bytes(n: number): Uint8Array {
    if (n > this.end - this.pos) bad('truncated bytes');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** `n` bytes of UTF-8 as a string; invalid UTF-8 is an error. */
  utf8(n: number): string {
    if (n > this.end - this.pos) bad('truncated string');
    const buf = this.buf;
    const start = this.pos;
    const end = start + n;
    this.pos = end;
    if (n <= 32) {
      // Short ASCII (nearly every key and many values): one string from the char codes. Appending
      // char by char built a string per char, garbage that a large decode paid for in scavenges.
      const codes = asciiCodes[n] as number[];
      for (let i = 0; i < n; i++) {
        const c = buf[start + i] as number;
        if (c >= 0x80) return decodeUtf8(buf, start, end);
        codes[i] = c;
      }
      return String.fromCharCode(...codes);
    }
    return decodeUtf8(buf, start, end);
  }

  /**
   * The first `prefix` UTF-16 units of `head` followed by `n` bytes of UTF-8: a front-coded key,
   * built as one string when short and ASCII (no slice and concatenation per key).
   */
  utf8After(head: string, prefix: number, n: number): string {
    if (n > this.end - this.pos) bad('truncated string');
    if (prefix + n > 32) return head.slice(0, prefix) + this.utf8(n);
    const buf = this.buf;
    const start = this.pos;
    const codes = asciiCodes[prefix + n] as number[];
    for (let i = 0; i < n; i++) {
      const c = buf[start + i] as number;
      if (c >= 0x80) return head.slice(0, prefix) + this.utf8(n);
      codes[prefix + i] = c;
    }
    for (let i = 0; i < prefix; i++) codes[i] = head.charCodeAt(i);
    this.pos = start + n;
    return String.fromCharCode(...codes);
  }

  /** A length-prefixed UTF-8 string. */
  string(): string {
    return this.utf8(this.varint());
  }
}

/**
 * Scratch char codes of {@link ByteReader.utf8}, one array per length up to 32 (setting an array's
 * length is a runtime call; decoding is synchronous, so one user at a time).
 */
const asciiCodes: number[][] = Array.from({ length: 33 }, (_, n) => new Array<number>(n).fill(0));

function decodeUtf8(buf: Uint8Array, start: number, end: number): string {
  try {
    return decoder.decode(buf.subarray(start, end));
  } catch {
    // The platform decoder's own error says nothing more than this one.
    return bad('invalid UTF-8');
  }
}

/** Collects integers and writes them as one canonical RLE column (see module docs). */
export class RleWriter {
  readonly #signed: boolean;
  #values: number[] = [];

  constructor(signed = false) {
    this.#signed = signed;
  }

  push(v: number): void {
    this.#values.push(v);
  }

  reset(): void {
    this.#values.length = 0;
  }

  get length(): number {
    return this.#values.length;
  }

  /** Writes the column, prefixed with its byte length (`body` is scratch space). */
  writeTo(out: ByteWriter, body: ByteWriter = new ByteWriter()): void {
    body.reset();
    const vs = this.#values;
    const put = this.#signed ? (v: number) => body.svarint(v) : (v: number) => body.varint(v);
    let i = 0;
    while (i < vs.length) {
      const v = vs[i] as number;
      let j = i + 1;
      while (j < vs.length && vs[j] === v) j++;
      if (j - i >= 2) {
        body.varint((j - i) * 2);
        put(v);
        i = j;
        continue;
      }
      // A literal: up to the first value that starts a run.
      j = i + 1;
      while (j < vs.length && vs[j] !== vs[j - 1]) j++;
      // vs[j] === vs[j - 1] (or j is the end): the run starts at j - 1 unless j is the end.
      const stop = j < vs.length ? j - 1 : j;
      body.varint((stop - i) * 2 + 1);
      for (let k = i; k < stop; k++) put(vs[k] as number);
      i = stop;
    }
    out.varint(body.pos);
    out.bytes(body.finish());
  }
}

/** Reads one RLE column written by {@link RleWriter} (the column's bytes are its range). */
export class RleReader extends ByteReader {
  readonly #signed: boolean;
  #left = 0;
  #run = false;
  #value = 0;
  /** Whether any value was read yet (for the boundary checks). */
  #started = false;
  #lastWasLiteral = false;

  constructor(buf: Uint8Array, start: number, end: number, signed = false) {
    super(buf, start, end);
    this.#signed = signed;
  }

  override reset(buf: Uint8Array, start: number, end: number): void {
    // Not `super.reset(…)`: V8 does not inline that call here, and a decode resets nine readers
    // per message (measured: a third of the time of decoding a one-field delta).
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.#left = 0;
    this.#run = false;
    this.#value = 0;
    this.#started = false;
    this.#lastWasLiteral = false;
  }

  next(): number {
    if (this.#left === 0) this.#segment();
    this.#left--;
    if (this.#run) return this.#value;
    const v = this.#signed ? this.svarint() : this.varint();
    if (v === this.#value && this.#started) bad('RLE literal repeats a value');
    this.#value = v;
    this.#started = true;
    return v;
  }

  #segment(): void {
    const h = this.varint();
    const n = Math.floor(h / 2);
    if (h % 2 === 0) {
      if (n < 2) bad('RLE run shorter than 2');
      const v = this.#signed ? this.svarint() : this.varint();
      if (this.#started && v === this.#value) bad('RLE segments not merged');
      this.#value = v;
      this.#run = true;
      this.#started = true;
      this.#lastWasLiteral = false;
    } else {
      if (n < 1) bad('empty RLE literal');
      if (this.#lastWasLiteral) bad('RLE literals not merged');
      this.#run = false;
      this.#lastWasLiteral = true;
    }
    this.#left = n;
  }

  /** Checks that every value was consumed. */
  finish(): void {
    if (this.#left !== 0 || !this.done) bad('column has unread values');
  }
}
