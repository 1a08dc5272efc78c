print("before")
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=4) as tracer:
    print("start of trace")
    for step in tracer.iter[:4]:
        tok = model.lm_head.output[0, -1].argmax(dim=-1)
        print(f"step {step}: token {tok.item()}")
        print("value", round(model.lm_head.output[0, -1].max().item(), 3))
    print("end of trace")
print("after")
