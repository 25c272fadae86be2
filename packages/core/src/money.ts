/**
 * Money and token counts are integers end to end. Prices are integer micro-USD per million tokens;
 * a cost is integer micro-USD. `ceilDiv` keeps the arithmetic exact for every safe integer.
 */
export const TOKENS_PER_PRICE_UNIT = 1_000_000;

/** ⌈a / b⌉ for non-negative safe integers a and positive b, exactly. */
export function ceilDiv(a: number, b: number): number {
  const r = a % b;
  return (a - r) / b + (r === 0 ? 0 : 1);
}
