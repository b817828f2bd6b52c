package sqlite

// MigrateSteps runs the migration of Open with other steps.
var MigrateSteps = migrate

// Migrations are the schema steps Open applies.
var Migrations = migrations
