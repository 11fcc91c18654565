/** Who asks for an operation, for authorization and the audit log. */
export interface Actor {
  /** `operator:<name>`, `device:<id>`, `cli:<user>`, `token:<id>`. */
  readonly actor: string;
  readonly source?: string | undefined;
}
