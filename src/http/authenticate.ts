/** Route-side authentication: the request's client certificate to a device or operator identity. */
import type { FastifyRequest } from 'fastify';
import { operatorActor, type Actor } from '../enrollment/actor.js';
import type { DeviceIdentity, OperatorIdentity } from '../enrollment/client-authenticator.js';
import type { SigningServices } from '../instance.js';
import type { OperatorRole } from '../enrollment/model.js';
import { presentedCertificate } from './client-certificate.js';
import { refuseCrossSite } from './same-origin.js';

/** Every operator role may do this. */
export const ANY_OPERATOR: readonly OperatorRole[] = ['admin', 'provisioner'];
/** Only admins may do this. */
export const ADMIN_ONLY: readonly OperatorRole[] = ['admin'];

/** The operator behind a request, with the roles a route allows. */
async function authenticateOperator(
  services: SigningServices,
  request: FastifyRequest,
  roles: readonly OperatorRole[],
): Promise<OperatorIdentity & Actor> {
  const identity = await services.clients.operator(presentedCertificate(request), roles);
  return { ...identity, actor: operatorActor(identity.name), operator: identity.name, source: request.ip };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The operator a requireOperator hook authenticated. */
    operator: (OperatorIdentity & Actor) | undefined;
  }
}

/**
 * An onRequest hook that authenticates an operator holding one of `roles` before the body
 * is read or validated: a client without the right certificate learns nothing about a
 * route's schema and costs us no body parsing.
 */
export function requireOperator(services: SigningServices, roles: readonly OperatorRole[]) {
  return async function requireOperatorHook(request: FastifyRequest): Promise<void> {
    refuseCrossSite(request);
    request.operator = await authenticateOperator(services, request, roles);
  };
}

/** The operator a route's requireOperator hook authenticated. */
export function operatorOf(request: FastifyRequest): OperatorIdentity & Actor {
  if (!request.operator) throw new Error(`${request.routeOptions.url} has no requireOperator hook`);
  return request.operator;
}

/** The device behind a request; `renewing` lets a recently expired certificate renew when configured. */
export async function authenticateDevice(services: SigningServices, request: FastifyRequest, options: { renewing?: boolean } = {}): Promise<DeviceIdentity> {
  refuseCrossSite(request);
  return services.clients.device(presentedCertificate(request), options);
}

/** The devices requireDevice hooks authenticated, by request. */
const devices = new WeakMap<FastifyRequest, DeviceIdentity>();

/**
 * An onRequest hook that authenticates the device before the body is read or validated,
 * as requireOperator does for operators: a client without a device certificate gets 401,
 * not a verdict on a body it had no right to send.
 */
export function requireDevice(services: SigningServices, options: { renewing?: boolean } = {}) {
  return async function requireDeviceHook(request: FastifyRequest): Promise<void> {
    devices.set(request, await authenticateDevice(services, request, options));
  };
}

/** The device a route's requireDevice hook authenticated. */
export function deviceOf(request: FastifyRequest): DeviceIdentity {
  const identity = devices.get(request);
  if (!identity) throw new Error(`${request.routeOptions.url} has no requireDevice hook`);
  return identity;
}
