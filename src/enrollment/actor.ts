/** Who asks for an operation, for authorization and the audit log. */
import type { OperatorRole } from './model.js';

export interface Actor {
  /** `operator:<name>`, `device:<id>`, `cli:<user>`, `token:<id>`. */
  readonly actor: string;
  /**
   * What the actor may do: an operator's role, `admin` for the CLI on the CA host (who
   * can read the store and the CA key anyway).
   */
  readonly role: OperatorRole;
  /** The operator's name, when an operator certificate authenticated the request. */
  readonly operator?: string | undefined;
  readonly source?: string | undefined;
}

/** The actor name of an operator, as tokens record who minted them. */
export const operatorActor = (name: string): string => `operator:${name}`;
