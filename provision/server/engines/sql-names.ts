// The one name an engine's account SQL takes from the inventory: the backup user, checked as a
// Unix name before it is ever put into SQL.
const UNIX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

export function checkUser(user: string): string {
  if (!UNIX_NAME.test(user)) throw new Error(`bad backup user name ${JSON.stringify(user)}`);
  return user;
}
