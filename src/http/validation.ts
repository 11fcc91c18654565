/**
 * Request validation. A JSON body is validated as sent: no type coercion (a number is not
 * a CSR) and no silently dropped fields. Query strings and path parameters arrive as text,
 * so there numbers and booleans are coerced from their string form.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance } from 'fastify';

/** Installs the two-validator compiler on an app. */
export function installValidation(app: FastifyInstance): void {
  const bodies = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false });
  const text = new Ajv({ coerceTypes: 'array', removeAdditional: false, useDefaults: true, allErrors: false });
  app.setValidatorCompiler(function compileValidator({ schema, httpPart }): ValidateFunction {
    return (httpPart === 'body' ? bodies : text).compile(schema);
  });
}
