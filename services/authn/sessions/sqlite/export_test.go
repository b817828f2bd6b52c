package sqlite

// MigrateSteps runs the migration of Open with other steps.
var MigrateSteps = migrate
