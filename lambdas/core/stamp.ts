import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `YYYYMMDDTHHMMSSZ` for a date, the sortable time part of a stamp. */
export function stampTime(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** A fresh install stamp: UTC second + 4 random characters (see design: host layout). */
export function newStamp(now: Date = new Date()): string {
  const bytes = randomBytes(4);
  let suffix = '';
  for (const byte of bytes) suffix += ALPHABET[byte % ALPHABET.length];
  return `${stampTime(now)}-${suffix}`;
}

/** The instant a stamp was minted (second precision). */
export function stampDate(stamp: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(stamp);
  if (!m) throw new Error(`not a stamp: ${stamp}`);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}
