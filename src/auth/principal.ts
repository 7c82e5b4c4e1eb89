/** Who is calling: resolved from the API key on every authenticated request. */
export interface Principal {
  userId: string;
  keyId: string;
  isAdmin: boolean;
}
