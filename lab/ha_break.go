package lab

// haExercises are the HA break-it exercises.
var haExercises []*Exercise
