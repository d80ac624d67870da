// The TypeScript type of the JSON a JSON schema accepts, for the schemas of src/wire (written
// `as const`): so that a route's schema and the type its callers read are one definition.
//
// It covers what those schemas use: type (one or a list), enum, anyOf, arrays with items, objects
// with properties, required and additionalProperties. Keywords that only narrow a value (pattern,
// minimum, maxLength...) leave its type as it is. Objects and arrays come out readonly, as the
// model's types are.

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type RequiredKeys<S> = S extends { readonly required: readonly (infer R)[] } ? R & string : never;

type FromObject<S> = S extends { readonly properties: infer P }
  ? Simplify<
    { readonly [K in keyof P & RequiredKeys<S>]: FromSchema<P[K]> } &
    { readonly [K in Exclude<keyof P & string, RequiredKeys<S>>]?: FromSchema<P[K]> }
  >
  : S extends { readonly additionalProperties: infer A extends object }
    ? Readonly<Record<string, FromSchema<A>>>
    : Readonly<Record<string, unknown>>;

type FromTypeName<T, S> =
  T extends 'string' ? string
    : T extends 'integer' | 'number' ? number
      : T extends 'boolean' ? boolean
        : T extends 'null' ? null
          : T extends 'array' ? (S extends { readonly items: infer I } ? readonly FromSchema<I>[] : readonly unknown[])
            : T extends 'object' ? FromObject<S>
              : never;

type FromAnyOf<L> = L extends readonly [infer First, ...infer Rest] ? FromSchema<First> | FromAnyOf<Rest> : never;

/** The type of the values that the JSON schema S (a literal object, `as const`) accepts. */
export type FromSchema<S> =
  S extends { readonly anyOf: infer L } ? FromAnyOf<L>
    : S extends { readonly enum: readonly (infer E)[] } ? E
      : S extends { readonly type: readonly (infer T)[] } ? FromTypeName<T, S>
        : S extends { readonly type: infer T } ? FromTypeName<T, S>
          : unknown;
