/** `0x`-prefixed lower-case hex, zero-padded to `digits`. */
export function hex(n: number | bigint, digits = 0): string {
  const s = (typeof n === "bigint" ? (n < 0n ? n + (1n << 64n) : n) : n >>> 0).toString(16);
  return "0x" + s.padStart(digits, "0");
}

export const U64_MASK = (1n << 64n) - 1n;

/** Two's-complement wrap to u64 (kernel arithmetic on phys_addr_t / dma_addr_t). */
export function u64(n: bigint): bigint {
  // comparisons allocate nothing; the mask makes a new bigint, so only when it changes the value
  return n >= 0n && n <= U64_MASK ? n : n & U64_MASK;
}
