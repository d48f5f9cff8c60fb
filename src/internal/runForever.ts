/**
 * The background loop of the workers and the metrics sampler.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/**
 * Runs `tick` at start and then every `interval` as a scoped fiber. A
 * failed tick (a database or backend outage, even a defect) is logged and
 * retried with backoff, 1 second doubling up to the interval, until it
 * succeeds; then the schedule goes on. Interruption stops it.
 *
 * @internal
 */
export const runForever = <A, E, R>(name: string, tick: Effect.Effect<A, E, R>, interval: Duration.Duration) =>
  tick.pipe(
    Effect.tapErrorCause((cause) => Effect.logWarning(`${name} run failed; retrying`, cause)),
    Effect.sandbox,
    Effect.retry(Schedule.exponential("1 second").pipe(Schedule.modifyDelay((d) => Duration.min(d, interval)))),
    Effect.repeat(Schedule.spaced(interval)),
    Effect.annotateLogs({ package: "effect-storage", module: name }),
    Effect.forkScoped,
    Effect.interruptible
  )
