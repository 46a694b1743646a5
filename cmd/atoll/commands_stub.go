package main

func envCommand() *command      { return &command{name: "env", short: "manage environments"} }
func projectCommand() *command  { return &command{name: "project", short: "manage projects"} }
func orgCommand() *command      { return &command{name: "org", short: "show and change the organization"} }
func tokenCommand() *command    { return &command{name: "token", short: "manage API tokens"} }
func operatorCommand() *command { return &command{name: "operator", short: "raft peers and snapshots"} }
