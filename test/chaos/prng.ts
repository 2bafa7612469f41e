/**
 * A small seeded PRNG (mulberry32) for the chaos runner: the fault schedule of run `i` under seed
 * `S` depends on nothing else, so `--seed S` replays it (and `--only i` replays one run).
 */

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Picks by weight: `[[item, weight], …]`. */
  weighted<T>(items: readonly (readonly [T, number])[]): T;
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeRng(seed: number): Rng {
  const next = mulberry32(seed);
  const rng: Rng = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
    weighted: (items) => {
      const total = items.reduce((s, [, w]) => s + w, 0);
      let x = next() * total;
      for (const [item, w] of items) {
        if ((x -= w) < 0) return item;
      }
      return items[items.length - 1]![0];
    },
  };
  return rng;
}

/** The seed of run `index` under the campaign seed `seed` (independent streams per run). */
export function runSeed(seed: number, index: number): number {
  return mulberry32(((seed >>> 0) ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0)() * 4294967296 >>> 0;
}
