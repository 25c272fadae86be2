import type { IConversionOptions } from 'protobufjs/minimal.js';

/**
 * A generated message class (e.g. `sluice.v1.Snapshot`), as far as plain-object conversion needs
 * it. Every class in `sluice` satisfies it.
 */
export interface MessageType<M> {
  verify(message: Record<string, unknown>): string | null;
  fromObject(object: Record<string, unknown>): M;
  toObject(message: M, options?: IConversionOptions): Record<string, unknown>;
  getTypeUrl(prefix?: string): string;
}

/** A plain JS object keyed by the camelCase field names of a message. */
export type PlainObject = Record<string, unknown>;

/**
 * Plain object → message instance, ready for `Type.encode`. Keys are the camelCase field names;
 * int64 fields take JS numbers (or Long). The object is checked with `Type.verify` first, so a
 * wrongly typed field throws a TypeError instead of being coerced silently (`fromObject` would turn
 * `"10"` into 10 and truncate `1.5`). Unknown keys are ignored.
 */
export function toWire<M>(type: MessageType<M>, plain: object): M {
  const problem = type.verify(plain as PlainObject);
  if (problem !== null) throw new TypeError(`${typeName(type)}: ${problem}`);
  return type.fromObject(plain as PlainObject);
}

/**
 * Message instance → plain object: every field present with its default when unset (`""`, `0`,
 * `false`, `[]`, `{}`; `null` for an unset message field), except proto3 `optional` fields and
 * oneof members, which are left out (read back as `undefined`) when unset. int64/uint64 fields
 * become JS numbers; a value outside ±Number.MAX_SAFE_INTEGER throws a RangeError rather than
 * losing precision.
 *
 * (Conversion goes through `longs: BigInt` and then narrows each bigint with a range check:
 * `longs: Number` would round silently, and only the int64 fields come back as bigints, so the
 * narrowing cannot touch anything else.)
 */
export function fromWire<T extends object = PlainObject, M = unknown>(type: MessageType<M>, message: M): T {
  const object = type.toObject(message, { longs: BigInt, defaults: true, arrays: true, objects: true });
  return narrowLongs(object, typeName(type)) as T;
}

/** Replaces every bigint in a fresh `toObject` result with a number, in place. */
function narrowLongs(value: unknown, path: string): unknown {
  if (typeof value === 'bigint') {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new RangeError(`${path}: 64-bit value ${value.toString()} does not fit a JS number exactly (beyond Number.MAX_SAFE_INTEGER)`);
    }
    return Number(value);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = narrowLongs(value[i], `${path}[${i}]`);
    return value;
  }
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    const record = value as PlainObject;
    for (const key of Object.keys(record)) record[key] = narrowLongs(record[key], `${path}.${key}`);
  }
  return value;
}

function typeName(type: MessageType<unknown>): string {
  // getTypeUrl('') is "/sluice.v1.Snapshot".
  return type.getTypeUrl('').replace(/^\//, '');
}
