// Build-only: the Deno drivers import JSR packages that tsc cannot resolve; their modules are typed at the call.
declare module "jsr:*";
