/**
 * The fleet rollout's step Lambdas (lambdas/handlers/rollout/*.ts, the `${…FunctionArn}`s of
 * statemachine/rollout.asl.json): what each one touches, so StepLambdas (step-functions.ts) gives
 * each role exactly that. They are built like the plugin workflows' steps (same bundling,
 * environment and VPC placement), one function and one role each.
 *
 * What each reads and writes (lambdas/core/rollout/):
 *   PlanRollout     validates and stores the source (Prepare's S3 rights: uploads/*, artifacts/*),
 *                   resolves the targets (ec2:DescribeInstances), reads the request and any earlier
 *                   record, writes the pages and the record (rollouts/*), takes the lock
 *                   (rollout-locks/*: conditional create / replace). No host.
 *   LoadRollout     the record (rollouts/*), renews the lock (rollout-locks/*). No host, no EC2.
 *   NextWave        the record and pages (rollouts/*), renews the lock; lists the plugins on each
 *                   target's host for the skip check (workspace lookup + the host transports).
 *   RecordWave      the record and pages (rollouts/*). Nothing else.
 *   FinishRollout   the record (rollouts/*), releases the lock (rollout-locks/*: read + conditional
 *                   delete).
 *   SummarizeTargetFailure  nothing: it shortens the caught error of a child execution.
 * Every function that reads a document that may be missing also gets s3:ListBucket on the bucket:
 * without it S3 answers a missing key with 403, and "no record yet" could not be told from "denied".
 */
import { Duration } from 'aws-cdk-lib';
import { SKIP_CHECK_CONCURRENCY } from '../../lambdas/core/rollout/next-wave.ts';
import { SCAN_LIMIT } from '../../lambdas/core/rollout/rollout-limits.ts';

/** Key prefixes of the rollout documents in the artifact bucket (lambdas/core/rollout/rollout-record.ts). */
export const ROLLOUTS_PREFIX = 'rollouts/';
export const ROLLOUT_LOCKS_PREFIX = 'rollout-locks/';

export type DocumentAction = 's3:GetObject' | 's3:PutObject' | 's3:DeleteObject';

export interface RolloutStepSpec {
  /** Handler file under lambdas/handlers/, without `.ts` (`rollout/plan-rollout`). */
  readonly file: string;
  readonly timeout: Duration;
  readonly memorySize: number;
  /** ec2:DescribeInstances: resolving targets, or the workspace lookup before a host operation. */
  readonly lookup: boolean;
  /** The host transports' rights, for the `list` host operation (NextWave's skip check). */
  readonly host: boolean;
  /** Validates and stores the source as Prepare does (uploads/*, artifacts/*). */
  readonly storesSource: boolean;
  /** Actions on rollouts/* (request, record, pages). */
  readonly documents: readonly DocumentAction[];
  /** Actions on rollout-locks/* (the per-plugin rollout lock). */
  readonly locks: readonly DocumentAction[];
}

/**
 * Timeouts: each Task's TimeoutSeconds in rollout.asl.json is the function's timeout plus
 * TASK_TIMEOUT_MARGIN_SECONDS (test/infra/timeouts.test.ts). PlanRollout streams and validates
 * the whole tarball (Prepare's 5 minutes and 512 MB); NextWave lists up to SCAN_LIMIT hosts;
 * LoadRollout and RecordWave read and write up to a few pages of 500 targets.
 */
export const ROLLOUT_STEP_SPECS: readonly RolloutStepSpec[] = [
  { file: 'rollout/plan-rollout', timeout: Duration.minutes(5), memorySize: 512, lookup: true, host: false, storesSource: true, documents: ['s3:GetObject', 's3:PutObject'], locks: ['s3:GetObject', 's3:PutObject'] },
  { file: 'rollout/load-rollout', timeout: Duration.minutes(5), memorySize: 256, lookup: false, host: false, storesSource: false, documents: ['s3:GetObject', 's3:PutObject'], locks: ['s3:GetObject', 's3:PutObject'] },
  { file: 'rollout/next-wave', timeout: Duration.minutes(5), memorySize: 256, lookup: true, host: true, storesSource: false, documents: ['s3:GetObject', 's3:PutObject'], locks: ['s3:GetObject', 's3:PutObject'] },
  { file: 'rollout/record-wave', timeout: Duration.minutes(5), memorySize: 256, lookup: false, host: false, storesSource: false, documents: ['s3:GetObject', 's3:PutObject'], locks: [] },
  { file: 'rollout/summarize-target-failure', timeout: Duration.minutes(1), memorySize: 256, lookup: false, host: false, storesSource: false, documents: [], locks: [] },
  { file: 'rollout/finish-rollout', timeout: Duration.minutes(1), memorySize: 256, lookup: false, host: false, storesSource: false, documents: ['s3:GetObject', 's3:PutObject'], locks: ['s3:GetObject', 's3:DeleteObject'] },
];

/** Rounds of host listings one NextWave call may run: SCAN_LIMIT targets, SKIP_CHECK_CONCURRENCY at a time. */
export const SKIP_CHECK_ROUNDS = Math.ceil(SCAN_LIMIT / SKIP_CHECK_CONCURRENCY);
