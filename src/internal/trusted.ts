/**
 * Instances of schema classes built from fields already known to be valid,
 * without running the class constructor: on the delete worker's hot path a
 * `Schema.Class` constructor costs a few microseconds per row even with
 * validation off, about what the rest of the row costs together.
 *
 * @internal
 */

/**
 * An instance of `Class` with exactly `fields` as its own properties, as its
 * constructor would make it (prototype, getters and structural equality
 * included). Use it only for fields that passed the class's checks.
 *
 * @internal
 */
export const trustedInstance = <A extends object, Fields extends object>(
  Class: new(fields: Fields, disableValidation?: boolean) => A,
  fields: Fields & Partial<A>
): A => Object.assign(Object.create(Class.prototype) as A, fields)
