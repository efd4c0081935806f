/**
 * The set-up every Roost Postgres session gets, whatever the driver.
 *
 * @module
 */
import type { DatabaseUrl } from "../../url.ts";

/**
 * The run-time parameters every Roost Postgres session starts with: UTC and
 * ISO dates, so wall-clock types and now() agree with how Roost reads them,
 * plus the URL's `application_name`. The statement timeout is not among
 * them: the core sets it once the driver's set-up queries are done.
 */
export function postgresSessionParameters(url: DatabaseUrl): Record<string, string> {
  const { application_name } = url.options;
  const parameters: Record<string, string> = { TimeZone: "UTC", DateStyle: "ISO, MDY" };
  if (application_name !== undefined) parameters.application_name = String(application_name);
  return parameters;
}
