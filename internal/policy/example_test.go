package policy_test

import (
	"errors"
	"fmt"

	"github.com/privyhq/privy/internal/policy"
)

func ExampleParsePolicy() {
	p, err := policy.ParsePolicy([]string{"read,list:app/**", "write:app/web/*/config"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Allows(policy.Read, "app/db/password"))
	fmt.Println(p.Allows(policy.Write, "app/web/eu/config"))
	fmt.Println(p.Allows(policy.Write, "app/db/password"))

	_, err = policy.ParsePolicy([]string{"raed:app/**"})
	fmt.Println(err)
	// Output:
	// true
	// true
	// false
	// invalid rule "raed:app/**": unknown capability "raed" (valid: read, list, write, delete, admin)
}

func ExamplePolicy_Check() {
	p, _ := policy.ParsePolicy([]string{"read:app/**"})
	err := p.Check(policy.Write, "app/web/x")
	fmt.Println(err)
	fmt.Println(errors.Is(err, policy.ErrDenied))
	// Output:
	// permission denied: this token lacks "write" on "app/web/x"
	// true
}

func ExampleMatch() {
	fmt.Println(policy.Match("app/**", "app"))
	fmt.Println(policy.Match("app/*", "app/web/x"))
	fmt.Println(policy.Match("a/**/z", "a/b/c/z"))
	fmt.Println(policy.Match("**", ":sys/tokens"))
	fmt.Println(policy.Match("*/tokens", ":sys/tokens"))
	// Output:
	// true
	// false
	// true
	// true
	// false
}
