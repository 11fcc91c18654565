/**
 * The JSON Schema builders the routes use, typed as TypeBox's: Fastify validates request
 * bodies and queries with Ajv, which reads plain JSON Schema, and TypeBox's types give the
 * handlers their request types at compile time. TypeBox's own runtime (373 modules, ~5-7
 * MiB of every serving process) is never loaded for that. The schemas are the ones TypeBox
 * makes, key for key, with its markers (`~kind`, `~optional`) as non-enumerable properties.
 */
import type { Type as TypeBox } from 'typebox';

type Options = Record<string, unknown>;
type Schema = Record<string, unknown>;

/** `schema` marked as TypeBox marks it (non-enumerable: not part of the JSON Schema). */
function marked(kind: string, schema: Schema): Schema {
  return Object.defineProperty(schema, '~kind', { value: kind, enumerable: false, configurable: true, writable: true });
}

const optionalMark = '~optional';
const isOptional = (schema: Schema): boolean => (schema as { [optionalMark]?: boolean })[optionalMark] === true;

export const Type = {
  String: ((options: Options = {}) => marked('String', { type: 'string', ...options })) as unknown as typeof TypeBox.String,
  Integer: ((options: Options = {}) => marked('Integer', { type: 'integer', ...options })) as unknown as typeof TypeBox.Integer,
  Null: ((options: Options = {}) => marked('Null', { type: 'null', ...options })) as unknown as typeof TypeBox.Null,
  Literal: ((value: string | number | boolean, options: Options = {}) => marked('Literal', { type: typeof value, const: value, ...options })) as unknown as typeof TypeBox.Literal,
  Array: ((items: Schema, options: Options = {}) => marked('Array', { type: 'array', items, ...options })) as unknown as typeof TypeBox.Array,
  Union: ((anyOf: Schema[], options: Options = {}) => marked('Union', { anyOf, ...options })) as unknown as typeof TypeBox.Union,
  Optional: ((schema: Schema) =>
    Object.defineProperty({ ...schema }, optionalMark, { value: true, enumerable: false, configurable: true, writable: true })) as unknown as typeof TypeBox.Optional,
  Object: ((properties: Record<string, Schema>, options: Options = {}) => {
    const required = Object.keys(properties).filter((name) => !isOptional(properties[name]!));
    return marked('Object', { type: 'object', ...(required.length ? { required } : {}), properties, ...options });
  }) as unknown as typeof TypeBox.Object,
};
