import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `YYYYMMDDTHHMMSSZ` for a date, the sortable time part of a stamp. */
export function stampTime(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/**
 * A fresh install stamp: UTC second + 4 characters. The first two are the millisecond in base 36
 * and the last two random, so stamps still sort by time within one second (rollback picks the
 * newest snapshot by stamp) and two stamps in one millisecond still differ.
 */
export function newStamp(now: Date = new Date()): string {
  const millis = now.getUTCMilliseconds().toString(36).padStart(2, '0');
  const bytes = randomBytes(2);
  let random = '';
  for (const byte of bytes) random += ALPHABET[byte % ALPHABET.length];
  return `${stampTime(now)}-${millis}${random}`;
}

/** The instant a stamp was minted (second precision). */
export function stampDate(stamp: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(stamp);
  if (!m) throw new Error(`not a stamp: ${stamp}`);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}
