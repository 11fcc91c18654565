/** Who a command run on the CA host acts as. */
import { userInfo } from 'node:os';
import type { Actor } from '../enrollment/actor.js';

/** The CLI user on the CA host, as the audit log names them. */
export const cliActor = (): Actor => ({ actor: `cli:${userInfo().username}`, role: 'admin' });
