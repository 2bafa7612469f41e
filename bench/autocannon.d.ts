/**
 * The part of autocannon's programmatic API (v9, README "Programmatically") the API load bench
 * and the burst test use. autocannon ships no type declarations and @types/autocannon is not a
 * dependency.
 */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    interface RequestData {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string | Buffer;
    }

    interface Request extends RequestData {
      /** Called before each request of this entry; the returned object is sent. */
      setupRequest?: (request: RequestData, context: Record<string, unknown>) => RequestData;
      /** Called with each response to a request of this entry (the context setupRequest saw). */
      onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string | string[]>) => void;
    }

    interface Options extends RequestData {
      url: string;
      connections?: number;
      /** Requests in all before the run ends (takes precedence over duration). */
      amount?: number;
      duration?: number;
      /** Seconds to wait for a response before counting a timeout. */
      timeout?: number;
      pipelining?: number;
      title?: string;
      requests?: Request[];
    }

    interface Histogram {
      average: number;
      min: number;
      max: number;
      p50: number;
      p90: number;
      p99: number;
    }

    interface Result {
      title?: string;
      requests: Histogram & { total: number; sent: number };
      latency: Histogram;
      /** Seconds. */
      duration: number;
      errors: number;
      timeouts: number;
      non2xx: number;
      statusCodeStats: Record<string, { count: number }>;
    }

    interface Instance extends EventEmitter, PromiseLike<Result> {
      stop(): void;
      on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this;
      on(event: 'reqError', listener: (err: Error) => void): this;
      on(event: string, listener: (...args: unknown[]) => void): this;
    }
  }

  function autocannon(options: autocannon.Options): autocannon.Instance;
  export = autocannon;
}
