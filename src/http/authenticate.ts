/** Route-side authentication: the request's client certificate to a device or operator identity. */
import type { FastifyRequest } from 'fastify';
import { operatorActor, type Actor } from '../enrollment/actor.js';
import type { DeviceIdentity, OperatorIdentity } from '../enrollment/client-authenticator.js';
import type { SigningServices } from '../instance.js';
import type { OperatorRole } from '../store/store.js';
import { presentedCertificate } from './client-certificate.js';

/** Every operator role may do this. */
export const ANY_OPERATOR: readonly OperatorRole[] = ['admin', 'provisioner'];
/** Only admins may do this. */
export const ADMIN_ONLY: readonly OperatorRole[] = ['admin'];

/** The operator behind a request, with the roles a route allows. */
export async function authenticateOperator(
  services: SigningServices,
  request: FastifyRequest,
  roles: readonly OperatorRole[],
): Promise<OperatorIdentity & Actor> {
  const identity = await services.clients.operator(presentedCertificate(request), roles);
  return { ...identity, actor: operatorActor(identity.name), operator: identity.name, source: request.ip };
}

/** The device behind a request; `renewing` lets a recently expired certificate renew when configured. */
export function authenticateDevice(services: SigningServices, request: FastifyRequest, options: { renewing?: boolean } = {}): Promise<DeviceIdentity> {
  return services.clients.device(presentedCertificate(request), options);
}
