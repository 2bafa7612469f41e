/**
 * zod, by name. `import { z } from 'zod'` hands over zod's whole namespace object, every locale
 * included, which no bundler can tree-shake: ~440 KiB of each Lambda bundle. Re-exporting the
 * few builders this code uses lets esbuild keep only those (~90 KiB). Import it as
 * `import * as z from '…/zod.ts'` and write schemas exactly as with zod's `z`.
 */
export { array, boolean, enum as enum, literal, number, object, record, strictObject, string, union, toJSONSchema } from 'zod';
export type { core, infer, output, ZodType } from 'zod';
